"""The demo: a realistic DripJobs event stream pushed through the whole pipeline.

`build_stream(customers, seed=...)` invents the stream and the GHL state it implies;
`Pipeline` runs sandbox, store, receiver and worker on loopback; `run_pipeline` /
`run_stream` push a stream through and return a verified `Summary` (`ghlsync demo`).
"""

from ghlsync.demo._pipeline import (
    Pipeline,
    PipelineError,
    PipelineOptions,
    pipeline_config,
    run_pipeline,
    run_stream,
)
from ghlsync.demo._send import Answer, send_stream
from ghlsync.demo._stream import DemoEvent, Expected, build_stream
from ghlsync.demo._summary import DeadLetterLine, Summary
from ghlsync.demo._verify import verify_answers, verify_dead_letters, verify_state

__all__ = [
    "Answer",
    "DeadLetterLine",
    "DemoEvent",
    "Expected",
    "Pipeline",
    "PipelineError",
    "PipelineOptions",
    "Summary",
    "build_stream",
    "pipeline_config",
    "run_pipeline",
    "run_stream",
    "send_stream",
    "verify_answers",
    "verify_dead_letters",
    "verify_state",
]
