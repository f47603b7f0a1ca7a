"""GA/T 1400 (视图库 / VIID) delivery: schemas, ids, Digest, conformance, client, receiver.

See ``../shared/docs/GAT1400.md`` for the protocol brief every module here follows.
"""
