"""What stands on the engine and the probes: loss-landscape geometry between runs
(``geometry``), choosing and explaining the non-binary options (``tune``), the experiments,
reproduced claims and studies (``experiments``), the benchmarks (``bench``) and the plots
of every result file (``plots``)."""
