"""The dashboards: the filter rail, the queries over the marts, and what each page (and its JSON twin) returns."""
