"""Diagnosing and storing one smear as one transaction.

Order: decode and diagnose everything in memory (any bad image fails the request before anything
is written), store the images by content hash, then insert the smear and its cells in one database
transaction. If the transaction fails, the image files this request created are removed: nothing
is half-stored, and nothing stored before is touched.

Deleting a smear removes its row and its cells in one transaction, then the image files that no
other cell references. Images are shared by content, and a request being stored references its
images only when it commits, so files written or reused within the grace period
(``MDSDX_IMAGE_GRACE_SECONDS``) are kept for a later ``mdsdx smears gc``.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.db import Cell, Smear, as_utc
from core.errors import IdempotencyKeyReused
from service.storage import ImageStore, sha256

log = logging.getLogger(__name__)
inference_lock = threading.Lock()  # TensorFlow already uses both cores; one smear at a time per worker


def find_idempotent(db, api_key_id, idempotency_key: str | None) -> Smear | None:
    if not idempotency_key:
        return None
    return db.scalar(select(Smear).where(Smear.api_key_id.is_(api_key_id) if api_key_id is None
                                         else Smear.api_key_id == api_key_id,
                                         Smear.idempotency_key == idempotency_key))


def request_fingerprint(images, external_id: str, patient_pseudonym: str | None) -> str:
    """SHA-256 of what defines a smear request: its metadata and its files' names and contents, in order."""
    parts = [external_id, patient_pseudonym, [(i.name, sha256(i.data)) for i in images]]
    return sha256(json.dumps(parts, ensure_ascii=True).encode())


def _replay(first: Smear, fingerprint: str, idempotency_key: str) -> tuple[Smear, bool]:
    # smears stored before the fingerprint existed have none: they replay as before
    if first.request_sha256 is not None and first.request_sha256 != fingerprint:
        raise IdempotencyKeyReused(f"the Idempotency-Key {idempotency_key!r} was first sent with a different request "
                                   f"(smear {first.id}); send a new key for a new smear")
    return first, False


def submit_smear(db, store: ImageStore, pipeline, images, external_id: str, patient_pseudonym: str | None,
                 api_key_id: int | None, idempotency_key: str | None = None, example: bool = False) -> tuple[Smear, bool]:
    """Diagnose and store; returns (smear, created). A repeated Idempotency-Key with the same request
    returns the first smear; with a different one it raises :class:`~core.errors.IdempotencyKeyReused`."""
    fingerprint = request_fingerprint(images, external_id, patient_pseudonym)
    first = find_idempotent(db, api_key_id, idempotency_key)
    if first is not None:
        return _replay(first, fingerprint, idempotency_key)
    names = [i.name for i in images]
    with inference_lock:
        result = pipeline.diagnose_images([i.data for i in images], names, external_id)
    digests, created = store.put_many([i.data for i in images])
    smear_id = str(uuid.uuid4())
    summary = result.summary()
    summary["smear_id"] = external_id
    smear = Smear(id=smear_id, external_id=external_id, patient_pseudonym=patient_pseudonym, api_key_id=api_key_id,
                  idempotency_key=idempotency_key, request_sha256=fingerprint, example=example, n_cells=result.n_cells, p_mds=result.p_mds,
                  call=result.call, threshold=result.threshold, cellnet_version=result.model_versions["cellnet"],
                  diagnoser_version=result.model_versions["diagnoser"], result=summary)
    smear.cells = [Cell(position=k, name=c.name, image_sha256=d, cell_type=c.cell_type, confidence=c.confidence,
                        dysplastic=c.dysplastic, features=c.features)
                   for k, (c, d) in enumerate(zip(result.cells, digests))]
    try:
        db.add(smear)
        db.commit()
    except IntegrityError:
        db.rollback()
        store.remove_untouched(created)
        first = find_idempotent(db, api_key_id, idempotency_key)
        if first is not None:  # a concurrent retry with the same key won the race
            return _replay(first, fingerprint, idempotency_key)
        raise
    except BaseException:
        db.rollback()
        store.remove_untouched(created)
        raise
    log.info("smear %s stored: %d cells, call %s", smear_id, result.n_cells, result.call)
    return smear, True


def sweep_images(db, store: ImageStore, digests: Iterable[str], grace_seconds: float) -> tuple[int, int]:
    """Remove the files of ``digests`` that no cell references and nobody used in the last ``grace_seconds``.

    Returns (files removed, unreferenced files kept for being recent)."""
    cutoff = time.time() - grace_seconds
    digests = sorted(set(digests))
    unused: list[str] = []
    for start in range(0, len(digests), 500):
        chunk = digests[start:start + 500]
        used = set(db.scalars(select(Cell.image_sha256).where(Cell.image_sha256.in_(chunk))))
        unused += [d for d in chunk if d not in used]
    removed = store.remove_stale(unused, cutoff)
    return len(removed), len(unused) - len(removed)


def delete_smear(db, store: ImageStore, smear: Smear, grace_seconds: float) -> dict:
    """Delete ``smear`` and its cells (one transaction), then sweep its images; returns a summary."""
    smear_id, n_cells = smear.id, smear.n_cells
    digests = [c.image_sha256 for c in smear.cells]
    try:
        db.delete(smear)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    removed, kept = sweep_images(db, store, digests, grace_seconds)
    log.info("smear %s deleted: %d cells, %d image files removed, %d kept for the grace period",
             smear_id, n_cells, removed, kept)
    return {"id": smear_id, "deleted": True, "n_cells": n_cells, "images_removed": removed, "images_kept": kept}


def smear_json(smear: Smear, base_url: str) -> dict:
    r = smear.result
    return {"id": smear.id, "external_id": smear.external_id, "created_at": as_utc(smear.created_at).isoformat(),
            "p_mds": r["p_mds"], "call": r["call"], "threshold": r["threshold"], "n_cells": r["n_cells"],
            "n_usable": r["n_usable"], "type_counts": r["type_counts"], "who": r["who"],
            "top_features": r["top_features"], "model_versions": r["model_versions"], "warnings": r["warnings"],
            "report_url": f"{base_url}/v1/smears/{smear.id}/report", "fhir_url": f"{base_url}/v1/smears/{smear.id}/fhir",
            "patient_pseudonym": smear.patient_pseudonym, "example": smear.example,
            "research_use_only": True, "training_data": "simulated cohorts"}
