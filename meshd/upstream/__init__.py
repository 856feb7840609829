"""The upstream side: hosts and cluster runtimes kept current from the model's diffs (:mod:`.cluster`,
:mod:`.host`), HTTP keep-alive pools (pure decisions in :mod:`.pool`, the shell in :mod:`.http`),
multiplexed RPC connections (:mod:`.mux`), active health checks (:mod:`.health`) and passive outlier
detection (:mod:`.outlier`)."""
