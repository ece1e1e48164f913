"""The web edge: assembles the domains' routers, middleware, error pages and the portal's own pages."""
