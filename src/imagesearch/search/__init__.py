"""The search pipeline: parameters in, a ranked, filtered, paginated page of products out."""
