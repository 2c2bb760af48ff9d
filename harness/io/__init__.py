"""Files the harness reads and writes: mp4 videos and safetensors weights."""
