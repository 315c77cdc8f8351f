"""Channel adapters: the gateways' native events in, contact events out. Pure: no I/O, no clock.

- `native` parses a gateway's raw body (`parse_native`) and documents every channel's
  payloads (`channel_schemas`, `component_schemas`, `example_events`); the models
  live in `phone`, `webchat`, `video` and `app` (`native_base`, `native_bot` are parts);
- `events` holds the contact events and the id conventions (`contact_id_for`,
  `contact_stream_id`, `contact_event_id`);
- `view` folds a contact stream into a `ContactView` (`evolve`, `fold`);
- `adapters.translate` says what a native event appends, following `lifecycle`'s rules
  for out-of-order and repeated events;
- `directory` (profiles, `facts_for`), `customer_import` (`parse_import`) and `repeat`
  (repeat-contact counting) enrich a contact;
- `security` checks gateway signatures, limits rates and masks logs.
"""
