"""Request and response shapes: separate Create, Update and Public models per resource."""
