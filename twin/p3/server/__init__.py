"""The sans-IO DLMS/COSEM server: application associations and the xDLMS services.

Bytes in, events out (`connection.DlmsServer`, one per TCP connection); the chapters:

- `association`, `establish`, `hls`: the association state machine, the DSMR clients and their
  mechanisms (DSMR P3 §2.1, §3.2.2), AARQ evaluation (Green Book §9.4.2) and HLS pass 3 and 4
  (Green Book §9.2.7.4).
- `protection`, `counters`: ciphered APDUs in an association, the frame-counter rule
  (DSMR P3 §3.2.3) and invocation counters reserved ahead in blocks.
- `services`, `set_service`, `action_service`: the GET, SET and ACTION service providers with
  with-list and block transfer (Green Book §9.3.4-9.3.7; DSMR P3 §2.1.3, §3.5).
- `logins`: the failed-login guard (DSMR P3 §4.2.1, event 46).
- `interfaces`, `events`: what the core calls (object model, keys, counters, challenges) and
  what it hands back to the service.

Built on `twin.p3.dlms` only; the COSEM object model (`twin.p3.objects`) sits above it.
"""
