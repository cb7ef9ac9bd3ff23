"""What the page templates are given: view models, filters and the layout of the graph data."""
