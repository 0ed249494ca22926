"""Neural agents of seeds 000-002 and DLS: window forecasters (``lstm``, ``attention_lstm``,
``transformer``) and networks trained on the Sharpe ratio (``dlm``, ``dls``). See docs/agents.md."""
