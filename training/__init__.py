"""livestyle training side: style networks, loss networks, training, export, optimization tools."""
