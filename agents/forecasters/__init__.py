"""Neural agents of the related papers (the diffusion-transformer paper, the LSTM mean-variance article, Chen & Zheng 2025) and DLS: window forecasters (``lstm``, ``attention_lstm``,
``transformer``) and networks trained on the Sharpe ratio (``dlm``, ``dls``). See docs/agents.md."""
