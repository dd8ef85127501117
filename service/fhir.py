"""HL7 FHIR R4 DiagnosticReport for one smear, validated with ``fhir.resources`` (its R4B module,
FHIR 4.3.0, the current release of the R4 line).

The report holds the XGBoost call, P(MDS), the WHO lineage estimates and the blast percentage as
contained Observations, and a contained Device for the AI software with its model versions.
"""
from __future__ import annotations

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from service.db import as_utc

MDSDX_SYSTEM = "https://mdsdx.invalid/fhir/CodeSystem/mdsdx"


def _obs(obs_id: str, code: str, display: str, **value) -> dict:
    return {"resourceType": "Observation", "id": obs_id, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": MDSDX_SYSTEM, "code": code, "display": display}], "text": display},
            "device": {"reference": "#device"}, **value}


def smear_report(smear, base_url: str) -> dict:
    """A validated DiagnosticReport (as a dict) for a stored :class:`service.db.Smear`."""
    r = smear.result
    observations = [
        _obs("p-mds", "p-mds", "Probability of MDS (vs aplastic anaemia)",
             valueQuantity={"value": round(r["p_mds"], 4), "unit": "probability"},
             referenceRange=[{"text": f"decision threshold {r['threshold']:.3f}"}]),
        _obs("call", "call", "mdsdx call", valueCodeableConcept={"text": r["call"]},
             interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                          "code": "POS" if r["call"] == "MDS" else "NEG"}]}]),
    ]
    for lineage, v in r["who"]["lineages"].items():
        if v["dysplastic_percent"] is not None:
            observations.append(_obs(f"dys-{lineage}", f"dysplasia-{lineage}", f"Dysplastic cells, {lineage} lineage",
                                     valueQuantity={"value": v["dysplastic_percent"], "unit": "%",
                                                    "system": "http://unitsofmeasure.org", "code": "%"}))
    if r["who"]["blasts"]["percent"] is not None:
        observations.append(_obs("blasts", "blasts-pb", "Blasts, percentage of leukocytes",
                                 valueQuantity={"value": r["who"]["blasts"]["percent"], "unit": "%",
                                                "system": "http://unitsofmeasure.org", "code": "%"}))
    device = {"resourceType": "Device", "id": "device",
              "deviceName": [{"name": "mdsdx", "type": "model-name"}],
              "type": {"text": "AI software: research use only, not a medical device"},
              "version": [{"type": {"text": k}, "value": v} for k, v in r["model_versions"].items()]}
    subject = {"display": smear.patient_pseudonym} if smear.patient_pseudonym else None
    report = {
        "resourceType": "DiagnosticReport", "id": smear.id, "status": "preliminary",
        "identifier": [{"system": f"{base_url}/v1/smears", "value": smear.external_id}],
        "code": {"text": "Peripheral-blood smear, automated MDS screening (mdsdx)"},
        "effectiveDateTime": as_utc(smear.created_at).isoformat(timespec="seconds"),
        "issued": as_utc(smear.created_at).isoformat(timespec="milliseconds"),
        "performer": [{"reference": "#device"}],
        "contained": [device, *observations],
        "result": [{"reference": f"#{o['id']}"} for o in observations],
        "conclusion": (f"{r['call']} (P(MDS) {r['p_mds']:.3f}, threshold {r['threshold']:.3f}). Research use only; "
                       "trained on simulated cohorts; not a diagnosis."),
        "presentedForm": [{"contentType": "text/html", "url": f"{base_url}/v1/smears/{smear.id}/report",
                           "title": "mdsdx report"}],
    }
    if subject:
        report["subject"] = subject
    return DiagnosticReport.model_validate(report).model_dump(mode="json", exclude_none=True)
