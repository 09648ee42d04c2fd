"""The operator's streaming speech API (issue 18; docs/api.md).

``python -m oracle api`` runs it: FastAPI on uvicorn with voicemarket/web's conventions (error
shape, typed settings). A buyer signs in with Ethereum (EIP-4361) for a short-lived token, then
asks for speech with a licence, a text, parameters and a payment-channel voucher; the API checks
the licence on-chain (cached, dropped when the licence manager, registry or channels log
anything), the voucher's signature and arithmetic and the channel's deposit, then streams the
audio as this process's own synth engine makes it, and ends with a receipt: the SHA-256 of the
whole WAV and the operator's signature over (request, audio hash). A background thread redeems
the accepted vouchers on-chain in batches.

Modules: :mod:`oracle.api.settings` (ApiSettings), :mod:`oracle.api.chainview` (on-chain reads and
caches), :mod:`oracle.api.lanes` (accepted vouchers in Redis), :mod:`oracle.api.redeemer`,
:mod:`oracle.api.app` (routes, limits, the stream).
"""
