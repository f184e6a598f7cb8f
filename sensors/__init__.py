"""The bundled sensor definitions (one YAML per sensor), shipped as cloudmask_cli.sensor_files;
read by cloudmask_cli.sensors."""
