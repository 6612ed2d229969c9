"""Outside material: links, photos, documents and forwarded posts (issue 15)."""
