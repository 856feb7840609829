"""A SOFARegistry session server for tests (:mod:`.server`) and the Java objects it sends (:mod:`.messages`);
pytest fixtures in :mod:`.fixtures` (``sofaregistry_server``, ``sofaregistry_server_factory``)."""
