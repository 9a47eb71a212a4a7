"""`ami bench logs`: job log write backends side by side, with 8 writer processes on one job."""
