"""The hosted WaveSpeed service: client, HTTP transport, API key and config."""
