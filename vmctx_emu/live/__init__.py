"""Facts read from a live Wasmtime: which release a loaded library is, and where its contexts are."""
