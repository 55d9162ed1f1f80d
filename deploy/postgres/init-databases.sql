-- One database per service: nothing reaches into another service's tables.
CREATE DATABASE cases;
CREATE DATABASE scoring;
CREATE DATABASE contact;
CREATE DATABASE compliance;
