"""HTML for the pages, built from records with every value escaped (no template engine needed)."""
