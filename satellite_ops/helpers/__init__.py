"""What satellites share: HTTP and S3 clients, the docling converter, LLM engines, output
schemas. Nothing here registers a satellite."""
