"""ESB signer: wraps JSON payloads in Ed25519-signed envelopes and verifies them."""
