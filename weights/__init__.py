"""The bundled model weights (safetensors + YAML), shipped as cloudmask_cli.weight_files; found by
cloudmask_cli.weights."""
