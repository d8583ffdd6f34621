"""CPU per engine chunk in the SSE decoder every HTTP adapter runs for each token of each stream.

A vLLM 0.32 text-completion chunk with its token id (273 bytes), fed one at a time as the network delivers them.
Compare revisions by running this file from each checkout: it imports the decoder of the checkout it sits in.

Run: .venv/bin/python bench/sse_decoder.py [--chunks 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.http.sse import SSEDecoder  # this checkout's, not an installed one

CHUNK = (b'data: {"id":"cmpl-4bf71fbe5cdb4352b836c1450b645511","object":"text_completion","created":1796069110,'
         b'"model":"qwen-bake","choices":[{"index":0,"text":" word","logprobs":null,"finish_reason":null,'
         b'"stop_reason":null,"token_ids":[1234],"prompt_token_ids":null}],"usage":null}\n\n')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for r in range(args.rounds):
        decoder = SSEDecoder()
        start = time.perf_counter()
        events = sum(len(decoder.feed(CHUNK, 1)) for _ in range(args.chunks))
        elapsed = time.perf_counter() - start
        assert events == args.chunks
        print(f"round {r + 1}: {elapsed / args.chunks * 1e6:.2f} µs per chunk ({len(CHUNK)} bytes)")


if __name__ == "__main__":
    main()
