"""Scale-out on Ray: the engine actor (actor, a leaf), the driver's dispatch to actors (dispatch), an Engine
over a pool of them (pool), top-k and hybrid descriptions on them (images) and top-k collection (topk).
Ray itself is imported only inside the functions that need it."""
