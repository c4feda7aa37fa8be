"""Provider callbacks (delivered, bounced, complained, unsubscribed), signed per destination."""
