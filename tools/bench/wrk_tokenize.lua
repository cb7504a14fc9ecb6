-- wrk script: POST /tokenize with a short prompt (docs/benchmarks.md, front-end throughput).
wrk.method = "POST"
wrk.body = '{"prompt": "The quick brown fox jumps over the lazy dog."}'
wrk.headers["Content-Type"] = "application/json"
