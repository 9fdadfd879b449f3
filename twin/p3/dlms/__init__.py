"""The DLMS/COSEM wire, sans-IO: bytes to typed APDUs and back, and the security suite.

Green Book (IEC 62056-5-3) and IEC 62056-47 chapters, one module each:

- `wrapper`: the COSEM wrapper over TCP (IEC 62056-47 §5; DSMR P3 §3, port 4059).
- `ber`, `acse`: the ACSE APDUs AARQ, AARE, RLRQ, RLRE (ISO 8650 BER; Green Book §9.4.2).
- `axdr`, `initiate`: A-XDR and the xDLMS InitiateRequest/Response, Conformance,
  ConfirmedServiceError, ExceptionResponse (Green Book §9.5).
- `cosem`, `get`, `set_action`, `action`, `blocks`: the COSEM attribute and method
  references, result codes and the GET, SET and ACTION APDUs with their block transfer
  (Green Book §9.3.4-9.3.7, §9.5).
- `security`: security suite 0 (AES-GCM-128, glo-ciphering, HLS-GMAC, RFC 3394 key unwrap;
  Green Book §9.2.3-9.2.7, DSMR P3 §3.2.3).
- `errors`: the one error family of P3 (`LocalP3Error` / `RemoteP3Error`).

Nothing here does I/O, reads a clock or imports anything above it in twin.p3.
"""
