"""Presets shipped with temu (installed as the ``temu.weights`` package): one folder each,
holding config.json, model.safetensors and a README.md model card."""
