"""Violation evidence: overlay images, plate close-up, composite, clip, keyed hashes, record.

Import the parts from their modules (``sharpeyes.pipeline.evidence.builder.EvidenceBuilder``,
``sharpeyes.pipeline.evidence.verify.verify_record``); this package file imports nothing heavy.
"""
