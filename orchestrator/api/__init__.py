"""The HTTP edge: routes, the OpenAI-compatible endpoint, OpenAPI, auth, admission and the web page.

The one place named errors become HTTP answers."""
