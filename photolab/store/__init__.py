"""The storage layer: named queries over the catalog, one module per table group."""
