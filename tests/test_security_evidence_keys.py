"""Issue 14 item 6: evidence keys per installation, rotation, public-key verification."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from sharpeyes.api.node.camera import evidence_key
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.evidence.keys import (
    DEMO_KEY,
    ED25519,
    SM2,
    KeyRing,
    evidence_hmac_key,
    sign_record_dir,
    sign_record_for_hmac_key,
)
from sharpeyes.pipeline.evidence.tamper import canonical_json, hmac_bytes, hmac_file, key_id
from sharpeyes.pipeline.evidence.verify import EXIT_CHANGED, EXIT_ERROR, EXIT_OK, main_verify


def _record(d: Path, key: bytes) -> Path:
    """A minimal record directory in the builder's format, HMAC'd with ``key``."""
    d.mkdir(parents=True)
    (d / "1.jpg").write_bytes(b"\xff\xd8 image one")
    (d / "clip.mp4").write_bytes(b"\x00\x00 clip")
    files = [
        {"name": n, "size": (d / n).stat().st_size, "hmac_sha256": hmac_file(d / n, key)}
        for n in ("1.jpg", "clip.mp4")
    ]
    doc: dict[str, object] = {
        "schema": "test",
        "files": files,
        "integrity": {"algorithm": "HMAC-SHA256", "key_id": key_id(key)},
    }
    doc["record_hmac"] = hmac_bytes(canonical_json(doc), key)
    (d / "record.json").write_bytes(canonical_json(doc, indent=True))
    return d


def _verify(path: Path, **kw: object) -> tuple[int, str]:
    lines: list[str] = []
    code = main_verify(path, kw.pop("key", None), out=lines.append, **kw)  # type: ignore[arg-type]
    return code, "\n".join(lines)


def test_installation_key_replaces_the_demo_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHARPEYES_EVIDENCE_KEY", raising=False)
    monkeypatch.setenv("SHARPEYES_KEY_DIR", str(tmp_path / "keys"))
    key = evidence_key()
    assert key != DEMO_KEY and b"demo" not in key
    assert evidence_key() == key  # generated once, then reused
    ring = KeyRing(tmp_path / "keys")
    active = ring.active()
    assert key_id(key) == active.key_id and active.key_id.startswith("ed25519-")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / f"{active.key_id}.key").stat().st_mode) == 0o600

    # the public demo key is refused outside the demo, for signing and for verifying
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", DEMO_KEY.decode())
    with pytest.raises(ConfigError, match="demo"):
        evidence_key()
    assert evidence_hmac_key(demo=True) == DEMO_KEY
    demo_rec = _record(tmp_path / "demo", DEMO_KEY)
    code, out = _verify(demo_rec, key=DEMO_KEY)
    assert code == EXIT_ERROR and "demo" in out
    code, out = _verify(demo_rec, key=DEMO_KEY, demo=True)
    assert code == EXIT_OK and "DEMO" in out

    # what the builder does after record.json: sign with the key behind the HMAC key
    rec = _record(tmp_path / "rec", key)
    assert sign_record_for_hmac_key(rec, key) == rec / "record.sig"
    assert sign_record_for_hmac_key(rec, b"a shared key of 32 bytes........") is None
    code, out = _verify(rec, key=key, key_dir=tmp_path / "keys")
    assert code == EXIT_OK and f"ed25519 by key {active.key_id}" in out, out


@pytest.mark.parametrize("algorithm", [ED25519, SM2])
def test_rotation_and_verification_with_a_public_key_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    monkeypatch.delenv("SHARPEYES_EVIDENCE_KEY", raising=False)
    ring = KeyRing.open(tmp_path / "keys", algorithm=algorithm)
    old = ring.active()
    rec = _record(tmp_path / "rec", old.hmac_key())
    sign_record_dir(rec, old)
    new = ring.rotate(algorithm)
    assert new.key_id != old.key_id and ring.active().key_id == new.key_id

    # the installation (with rotated keys) names the old key and verifies everything
    code, out = _verify(rec, key_dir=tmp_path / "keys")
    assert code == EXIT_OK, out
    assert old.key_id in out and "signature" in out

    # a court holds only the exported public key: the signature and SHA-256s still verify
    court = tmp_path / "court"
    court.mkdir()
    pub = court / f"{old.key_id}.pub"
    shutil.copy(tmp_path / "keys" / f"{old.key_id}.pub", pub)
    assert "private" not in json.loads(pub.read_text())
    code, out = _verify(rec, key_dir=court / "none", public_keys=(pub,))
    assert code == EXIT_OK, out
    assert f"{algorithm} by key {old.key_id}" in out

    (rec / "clip.mp4").write_bytes(b"\x00\x00 edited")
    code, out = _verify(rec, key_dir=court / "none", public_keys=(pub,))
    assert code == EXIT_CHANGED and "CHANGED clip.mp4" in out


def test_an_sm2_key_whose_public_x_begins_with_04_signs_and_verifies() -> None:
    """gmssl's constructor strips a "04" point prefix with ``lstrip("04")``: a raw public key
    x‖y whose hex begins with 04 (one in 256; CI drew one in round 26) lost its leading digits
    and nothing it signed verified. d = 0x12345be gives such a key."""
    from gmssl import sm2  # type: ignore[import-untyped]

    from sharpeyes.pipeline.evidence.keys import SM2, _sign, verify_signature

    d = 0x12345BE
    public_hex = sm2.CryptSM2(private_key=f"{d:064x}", public_key="")._kg(
        d, sm2.default_ecc_table["g"]
    )
    assert public_hex.startswith("04") and len(public_hex) == 128
    private, public = bytes.fromhex(f"{d:064x}"), bytes.fromhex(public_hex)
    for data in (b"record.json", b"\x00" * 64, b"x" * 1000):
        signature = _sign(SM2, private, public, data)
        assert verify_signature(SM2, public, data, signature)
        assert not verify_signature(SM2, public, data + b"!", signature)
