//! Reports built from a stored campaign record: locality tables, DNS table, interference.
