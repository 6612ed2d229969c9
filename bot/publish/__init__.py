"""Publishing drafts: a git repository, Telegraph pages, HTML and DOCX files."""
