"""Generated protobuf and gRPC modules of the llmpool proto packages."""
