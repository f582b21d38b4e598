"""Evaluation: metrics (``metrics``, ``niqe``, ``temporal``, ``stlpips``), data and degradations
(``data``), the runner (``runner.evaluate`` / ``runner.evaluate_many``), reports (``report``),
benchmarks (``bench``) and the Real-ESRGAN peer model (``realesrgan``)."""
