"""The store: records and reviews, cached probes and judge calls, leases, export; a store is data, never code."""
