"""In-process fakes of external services, each following the service's documented API (see its docstring)."""
