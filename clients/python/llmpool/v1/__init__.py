"""llmpool.v1, generated from proto/llmpool/v1/llmpool.proto by generate.sh."""
