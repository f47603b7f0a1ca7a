"""Camera sharding across workers and nodes (``docs/SCALE_OUT.md``).

``local`` (embedded default, no Ray) and ``ray_backend`` (Ray Core actors, imported only when
the Ray backend is selected) share the coordinator (:mod:`sharpeyes.api.cluster.coordinator`), the
lease/epoch SQL (:mod:`sharpeyes.api.cluster.leases`), evidence storage and health. Importing this
package never imports Ray.
"""
