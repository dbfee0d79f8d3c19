"""Fixed payloads shared by the upstream, the proxies, wrk and the JSON micro-benchmark."""

import json

# Typical inbound chat request (~0.6 KB): system + user + assistant + user turn, sampling params.
CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant for an insurance company. Answer concisely."},
        {"role": "user", "content": "What documents do I need to file a claim for water damage in my flat?"},
        {"role": "assistant", "content": "You usually need photos of the damage, a repair estimate and your policy number."},
        {"role": "user", "content": "And how long does the assessment typically take after I submit them?"},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
    "top_p": 1,
    "stream": False,
    "user": "u-18c2f0",
}

# Fixed OpenAI chat.completion answer from the fake upstream (~0.4 KB).
CHAT_RESPONSE = {
    "id": "chatcmpl-9xQz3bench0000000000000001",
    "object": "chat.completion",
    "created": 1718000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_bench01",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The assessment usually takes 5 to 10 working days after all documents are received.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 96, "completion_tokens": 19, "total_tokens": 115},
}

REQUEST_BYTES = json.dumps(CHAT_REQUEST, separators=(",", ":")).encode()
RESPONSE_BYTES = json.dumps(CHAT_RESPONSE, separators=(",", ":")).encode()
UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
