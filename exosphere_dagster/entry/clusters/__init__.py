"""The cluster API: the clusters store, apply/delete, the GraphQL client and the `exosphere clusters` CLI."""
