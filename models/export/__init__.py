"""Saved models and the runtimes that serve them.

- ``artifact``: the stage-1 folder (``cellnet.keras``, ONNX export, ``metadata.json``) and runtime choice.
- ``akira_artifact``: the AKIRA folder (``akira.keras``, ``akira.onnx``, ``metadata.json``).
- ``runtime``: ONNX Runtime and OpenVINO sessions, and the Keras -> ONNX export.
- ``quantize``: the int8 and bf16 runtimes, checked against the float model.
- ``model_card``: ``MODEL_CARD.md`` / ``model_card.json`` beside a saved model.
"""
