"""livestyle inference side: ONNX Runtime engine, WebRTC streaming, REST API, video processing."""
