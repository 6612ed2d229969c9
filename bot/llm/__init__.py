"""The LLM side: prompt files, output schemas, an OpenAI-compatible client."""
