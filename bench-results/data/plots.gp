# Made by shmbus-bench; run again with: cd bench-results && gnuplot data/plots.gp
set terminal pngcairo size 1100,700 font ',10'
set grid
set key outside right top
