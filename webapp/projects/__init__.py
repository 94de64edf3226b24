"""Projects, their members and roles (admin, researcher, annotator), and invite links."""
