"""The service desk's records beside the incidents: problems and known errors, the knowledge base."""
