"""`ami worker`: the reference processing service (no Django: it talks to the API over HTTP)."""
