"""Partner webhooks: a lot's HTTPS endpoints that receive signed events.

- models.py    WebhookEndpoint (a lot's receiver), WebhookDelivery (one event to one
               endpoint, retried), WebhookStream (how far a source of events was read)
- signing.py   the `ParkSpot-Signature` header: make it, check it
- sending.py   one HTTP POST, outside any transaction (urllib, short timeout)
- services.py  every write: endpoints, enqueueing, delivering with backoff, retrying
- admin.py     endpoints and their delivery log in the admin, scoped to the staff's lots

Generic on purpose: lots knows nothing of reservations (DESIGN §3). What reservation
events become is decided by reservations/services/webhooks.py, which reads the
ReservationEvent table as an outbox and hands payloads to services.deliveries_enqueue.
"""
