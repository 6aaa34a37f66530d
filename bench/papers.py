"""Real, well-known papers for bench/learning.py: titles with one- or two-sentence abstracts in our own words.

None is in the seed set (its papers are invented). TRAIN papers are the ones rounds get votes on;
FRESH papers are only ever used to measure the voters' like-rates, so no round sees them. Every
abstract gives something to quote (a figure, a dataset, a model's name), which the `numbers` voter
of bench/voters.py looks for.
"""

from __future__ import annotations

TRAIN = [
    ("Deep Residual Learning for Image Recognition",
     "We add identity shortcut connections so that very deep networks learn residual functions. A 152-layer network "
     "wins ImageNet 2015 classification with 3.57% top-5 error."),
    ("Adam: A Method for Stochastic Optimization",
     "We propose an optimizer with per-parameter step sizes from estimates of the first and second moments of the "
     "gradients. It works well on logistic regression, MLPs and CNNs with little tuning."),
    ("Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
     "We normalize each layer's inputs over the mini-batch. An Inception network reaches the same accuracy with 14 "
     "times fewer training steps."),
    ("Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
     "Randomly dropping units during training prevents co-adaptation. It improves results on vision, speech and "
     "document classification benchmarks."),
    ("Generative Adversarial Nets",
     "A generator and a discriminator are trained against each other in a minimax game. Samples on MNIST and "
     "CIFAR-10 are competitive with other generative models."),
    ("Auto-Encoding Variational Bayes",
     "We reparameterize the variational lower bound so it can be optimized with stochastic gradients. The "
     "resulting variational autoencoder learns generative models of MNIST and Frey faces."),
    ("Neural Machine Translation by Jointly Learning to Align and Translate",
     "An encoder-decoder learns to attend to source words while translating. It matches phrase-based systems on "
     "English-to-French and handles long sentences better."),
    ("Sequence to Sequence Learning with Neural Networks",
     "Two deep LSTMs map an input sentence to a vector and back to a translation. On WMT'14 English-to-French it "
     "reaches 34.8 BLEU; reversing the source order helps."),
    ("Efficient Estimation of Word Representations in Vector Space",
     "Two simple log-linear models, CBOW and skip-gram, learn word vectors from billions of words in hours. The "
     "vectors solve syntactic and semantic analogy questions."),
    ("GloVe: Global Vectors for Word Representation",
     "We fit word vectors to the logarithm of global co-occurrence counts. They reach 75% on the word analogy task "
     "and beat word2vec on similarity and NER."),
    ("Playing Atari with Deep Reinforcement Learning",
     "A convolutional network trained with Q-learning from raw pixels learns control policies. It beats previous "
     "approaches on six of seven Atari games and a human expert on three."),
    ("Mastering the Game of Go with Deep Neural Networks and Tree Search",
     "Policy and value networks trained on expert games and self-play guide Monte Carlo tree search. The program "
     "defeated the European Go champion five games to zero."),
    ("Proximal Policy Optimization Algorithms",
     "We optimize a clipped surrogate objective with several epochs of minibatch updates per batch of experience. "
     "It outperforms other online policy gradient methods on MuJoCo and Atari."),
    ("Semi-Supervised Classification with Graph Convolutional Networks",
     "A first-order approximation of spectral graph convolutions gives a simple layer-wise propagation rule. It "
     "beats prior methods on Cora, Citeseer and PubMed node classification."),
    ("U-Net: Convolutional Networks for Biomedical Image Segmentation",
     "A contracting path and a symmetric expanding path with skip connections segment images from very few "
     "annotated examples. It won the ISBI 2015 cell tracking challenge."),
    ("You Only Look Once: Unified, Real-Time Object Detection",
     "We frame detection as one regression from image pixels to boxes and class probabilities. The network runs at "
     "45 frames per second with twice the mAP of other real-time detectors."),
    ("Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks",
     "A region proposal network shares convolutional features with the detector, making proposals nearly free. "
     "It reaches state-of-the-art accuracy on PASCAL VOC at 5 frames per second."),
    ("Distilling the Knowledge in a Neural Network",
     "A small model trained on the softened outputs of a large ensemble keeps most of its accuracy. We show gains "
     "on MNIST and a commercial acoustic model."),
    ("XGBoost: A Scalable Tree Boosting System",
     "A sparsity-aware, cache-aware gradient boosting system scales to billions of examples. It is used by many "
     "winning solutions of machine learning competitions."),
    ("Random Forests",
     "Ensembles of decision trees grown on bootstrap samples with random feature selection generalize well. Their "
     "error converges as the number of trees grows."),
    ("MapReduce: Simplified Data Processing on Large Clusters",
     "Users write a map and a reduce function and the runtime parallelizes them over thousands of machines, "
     "handling failures. Google runs thousands of such jobs every day."),
    ("The PageRank Citation Ranking: Bringing Order to the Web",
     "We rank web pages by the stationary distribution of a random surfer over the link graph. The ranking helps "
     "search on a crawl of 75 million pages."),
    ("Human-level Control through Deep Reinforcement Learning",
     "A deep Q-network with experience replay and a target network learns 49 Atari games from pixels and score. It "
     "reaches human level on more than half of them."),
    ("Language Models are Few-Shot Learners",
     "We train a 175-billion-parameter language model and evaluate it with prompts and a few examples, without "
     "fine-tuning. It is strong on many NLP benchmarks and writes news articles humans struggle to identify."),
    ("Denoising Diffusion Probabilistic Models",
     "A model learns to reverse a gradual noising process. On CIFAR-10 it reaches an FID of 3.17 and an "
     "Inception score of 9.46."),
    ("Learning Transferable Visual Models From Natural Language Supervision",
     "An image encoder and a text encoder are trained contrastively on 400 million image-text pairs. The model "
     "transfers zero-shot to over 30 vision datasets."),
    ("Highly Accurate Protein Structure Prediction with AlphaFold",
     "A network that reasons over multiple sequence alignments and pairwise features predicts protein structures. "
     "In CASP14 its accuracy was competitive with experimental structures in most cases."),
    ("Neural Ordinary Differential Equations",
     "We parameterize the derivative of the hidden state with a neural network and backpropagate through an ODE "
     "solver with the adjoint method. We show continuous-depth residual networks and normalizing flows."),
    ("Scaling Laws for Neural Language Models",
     "Language model loss follows power laws in model size, data and compute over seven orders of magnitude. "
     "Larger models are more sample-efficient, so compute-optimal training stops well before convergence."),
    ("Spectral Normalization for Generative Adversarial Networks",
     "We normalize each layer's weight by its largest singular value to stabilize the discriminator. It improves "
     "image quality on CIFAR-10, STL-10 and ImageNet."),
    ("A Simple Framework for Contrastive Learning of Visual Representations",
     "Strong augmentation, a projection head and large batches make contrastive self-supervised learning work. A "
     "linear classifier on its features reaches 76.5% top-1 on ImageNet."),
    ("Deep Learning Scaling Is Predictable, Empirically",
     "Across translation, language modeling, image classification and speech, generalization error falls as a "
     "power law of training set size. The exponents differ by task but not by architecture."),
]

FRESH = [
    ("Attention Is All You Need",
     "We propose the Transformer, a network based solely on attention. It reaches 28.4 BLEU on WMT 2014 "
     "English-to-German and trains in a fraction of the time of recurrent models."),
    ("BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
     "We pre-train a bidirectional Transformer with masked language modeling and next sentence prediction. "
     "Fine-tuned, it sets new results on eleven NLP tasks including GLUE and SQuAD."),
    ("ImageNet Classification with Deep Convolutional Neural Networks",
     "A large convolutional network with ReLUs, dropout and GPU training classifies 1.2 million images. It "
     "reaches 15.3% top-5 error in ILSVRC-2012, far ahead of the runner-up."),
    ("Long Short-Term Memory",
     "A recurrent architecture with gated memory cells keeps error flowing over long time lags. It learns tasks "
     "with lags of more than 1000 steps that other recurrent networks cannot."),
    ("Very Deep Convolutional Networks for Large-Scale Image Recognition",
     "Stacks of small 3x3 convolutions let networks go 16 to 19 layers deep. They took first and second places "
     "in ImageNet 2014 localization and classification."),
    ("Going Deeper with Convolutions",
     "The Inception module combines convolutions of several sizes within a fixed compute budget. A 22-layer "
     "network won ImageNet 2014 classification and detection."),
    ("Asynchronous Methods for Deep Reinforcement Learning",
     "Parallel actor-learners update a shared network asynchronously instead of using experience replay. The "
     "actor-critic variant beats the state of the art on Atari while training on a single CPU."),
    ("Graph Attention Networks",
     "Masked self-attention over a node's neighbors assigns different weights to different neighbors. It matches "
     "or beats the state of the art on Cora, Citeseer, PubMed and a protein interaction dataset."),
    ("Mask R-CNN",
     "We add a branch that predicts an object mask to Faster R-CNN. It outperforms all single-model entries on "
     "COCO instance segmentation, detection and keypoints."),
    ("Deep Speech 2: End-to-End Speech Recognition in English and Mandarin",
     "One end-to-end network trained on thousands of hours recognizes English and Mandarin speech. On several "
     "benchmarks it is competitive with human transcribers."),
    ("WaveNet: A Generative Model for Raw Audio",
     "A deep autoregressive network of dilated causal convolutions generates raw audio waveforms. Listeners rate "
     "its text-to-speech as more natural than the best parametric and concatenative systems."),
    ("Mastering Chess and Shogi by Self-Play with a General Reinforcement Learning Algorithm",
     "One algorithm learns chess, shogi and Go from self-play with no human knowledge beyond the rules. Within 24 "
     "hours it beats a world-champion program in each game."),
    ("Layer Normalization",
     "We normalize over the summed inputs of all units in a layer for each training case. Unlike batch "
     "normalization it works for recurrent networks and small batches, and it speeds up training of models such as "
     "DRAW on MNIST."),
    ("An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
     "A plain Transformer applied to sequences of image patches classifies images. Pre-trained on large datasets "
     "it matches or beats convolutional networks with less compute."),
    ("Training Language Models to Follow Instructions with Human Feedback",
     "We fine-tune GPT-3 on demonstrations and then with reinforcement learning from human preference rankings. "
     "Outputs of a 1.3B model are preferred to those of the 175B GPT-3."),
    ("LoRA: Low-Rank Adaptation of Large Language Models",
     "We freeze the pre-trained weights and train low-rank update matrices in each layer. It matches full "
     "fine-tuning of GPT-3 with 10,000 times fewer trainable parameters."),
    ("Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
     "We fit a language model to human preferences with a simple classification loss, with no reward model and no "
     "reinforcement learning. It matches or beats PPO-based RLHF on sentiment, summarization and dialogue."),
    ("Dynamic Routing Between Capsules",
     "Groups of neurons called capsules output vectors, and routing by agreement sends them to higher-level "
     "capsules. It reaches state-of-the-art on MNIST and recognizes overlapping digits."),
    ("Bitcoin: A Peer-to-Peer Electronic Cash System",
     "A peer-to-peer network timestamps transactions in a chain of hash-based proof of work. Double spending is "
     "prevented as long as honest nodes control most of the CPU power."),
    ("Bigtable: A Distributed Storage System for Structured Data",
     "A sparse, distributed, persistent sorted map scales to petabytes across thousands of servers. Over sixty "
     "Google products use it."),
    ("Spanner: Google's Globally-Distributed Database",
     "A database that shards data across datacenters worldwide and supports externally consistent transactions "
     "with the TrueTime API, which exposes clock uncertainty."),
    ("Deep Learning for Detecting Diabetic Retinopathy in Retinal Fundus Photographs",
     "A network trained on 128,000 images detects referable diabetic retinopathy. On two validation sets it "
     "reaches an AUC of 0.99 with high sensitivity and specificity."),
    ("Estimating the Reproducibility of Psychological Science",
     "We replicated 100 studies from three psychology journals. Only 36% of the replications had significant "
     "results, and effect sizes were half of the originals."),
    ("Why Most Published Research Findings Are False",
     "A model of bias, power and pre-study odds shows that, for most designs and settings, a finding claimed at p "
     "below 0.05 is more likely false than true. Small studies, small effects and flexible designs make it worse."),
    ("Densely Connected Convolutional Networks",
     "Each layer takes the feature maps of all preceding layers as input, which strengthens feature propagation and "
     "reuses features. DenseNets improve on the state of the art on most of CIFAR-10, CIFAR-100, SVHN and ImageNet "
     "while needing less computation."),
    ("EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
     "We scale network depth, width and input resolution together with one compound coefficient. EfficientNet-B7 "
     "reaches 84.3% top-1 accuracy on ImageNet while being 8.4 times smaller than the best previous ConvNet."),
    ("Fully Convolutional Networks for Semantic Segmentation",
     "Convolutional networks trained end to end, pixels to pixels, take inputs of any size and produce dense "
     "predictions. They reach 62.2% mean IU on PASCAL VOC 2012, a 20% relative improvement, in under a fifth of a "
     "second per image."),
    ("SSD: Single Shot MultiBox Detector",
     "One network predicts boxes and class scores from default boxes over several feature maps, with no proposal "
     "stage. On VOC2007 it reaches 74.3% mAP at 59 frames per second for 300x300 inputs."),
    ("Focal Loss for Dense Object Detection",
     "We reshape the cross-entropy loss so that well-classified examples count less, which tackles the "
     "foreground-background imbalance of one-stage detectors. Our RetinaNet matches their speed and beats two-stage "
     "detectors on COCO."),
    ("Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
     "Two mappings between image domains are trained adversarially with a cycle-consistency loss, so no paired "
     "examples are needed. Results include horses to zebras, summer to winter and photos to Monet paintings."),
    ("Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks",
     "We give architectural guidelines that make convolutional GANs train stably, with samples of LSUN bedrooms. The "
     "discriminator's features classify images well and the generator's latent space supports vector arithmetic."),
    ("Progressive Growing of GANs for Improved Quality, Stability, and Variation",
     "Generator and discriminator grow during training, adding layers of ever higher resolution. It produces CelebA "
     "faces at 1024x1024 and a record Inception score of 8.80 on unsupervised CIFAR-10."),
    ("A Style-Based Generator Architecture for Generative Adversarial Networks",
     "A generator borrowed from style transfer separates high-level attributes from stochastic variation and "
     "controls synthesis scale by scale. We also release FFHQ, a dataset of 70,000 high-quality human faces."),
    ("Wasserstein GAN",
     "The critic estimates the Earth Mover distance between the real and generated distributions, kept Lipschitz by "
     "weight clipping. Training is more stable, mode collapse is reduced and the loss tracks sample quality."),
    ("Deep Contextualized Word Representations",
     "Word vectors are learned functions of the internal states of a deep bidirectional language model pre-trained "
     "on a large corpus. Adding them improves the state of the art on six NLP tasks, including SQuAD and SNLI."),
    ("Language Models are Unsupervised Multitask Learners",
     "A 1.5-billion-parameter Transformer trained on WebText, millions of web pages, performs tasks without "
     "task-specific training. Zero-shot, it sets the state of the art on 7 of 8 language modeling datasets."),
    ("RoBERTa: A Robustly Optimized BERT Pretraining Approach",
     "A replication study finds BERT significantly undertrained. Training longer on more data with bigger batches, "
     "dynamic masking and no next sentence prediction matches or beats later models on GLUE, RACE and SQuAD."),
    ("Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
     "We cast every language task as text to text and compare pre-training objectives, architectures and datasets "
     "systematically. With the new C4 corpus and 11 billion parameters we reach the state of the art on GLUE, "
     "SuperGLUE and SQuAD."),
    ("Effective Approaches to Attention-based Neural Machine Translation",
     "We compare a global attention over all source words with a local one over a window of them. Local attention "
     "gains 5.0 BLEU over non-attentional systems, and an ensemble sets a new best of 25.9 BLEU on WMT'15 "
     "English-to-German."),
    ("Convolutional Sequence to Sequence Learning",
     "A sequence to sequence model built entirely on convolutions with gated linear units replaces recurrent "
     "networks. It beats deep LSTM systems on WMT'14 English-German and English-French, an order of magnitude faster."),
    ("Neural Architecture Search with Reinforcement Learning",
     "A recurrent controller writes descriptions of networks and is trained with reinforcement learning to maximize "
     "their validation accuracy. It finds a CIFAR-10 model with 3.65% test error and a recurrent cell with 62.4 "
     "perplexity on Penn Treebank."),
    ("Trust Region Policy Optimization",
     "An iterative procedure for optimizing policies with guaranteed monotonic improvement, approximated for neural "
     "network policies. It learns simulated swimming, hopping and walking, and plays Atari games from raw images."),
    ("Continuous Control with Deep Reinforcement Learning",
     "We carry deep Q-learning over to continuous actions with an actor-critic based on the deterministic policy "
     "gradient. The same algorithm and settings solve more than 20 simulated physics tasks, some directly from "
     "pixels."),
    ("Soft Actor-Critic: Off-Policy Maximum Entropy Deep Reinforcement Learning with a Stochastic Actor",
     "An off-policy actor-critic maximizes expected reward together with the entropy of its policy. It beats prior "
     "methods on MuJoCo locomotion tasks up to the 21-dimensional Humanoid and varies little across random seeds."),
    ("Mastering the Game of Go without Human Knowledge",
     "AlphaGo Zero learns Go by reinforcement learning from self-play alone, starting from random play with no human "
     "games. It beat the earlier, champion-defeating AlphaGo by 100 games to 0."),
    ("Inductive Representation Learning on Large Graphs",
     "GraphSAGE learns functions that sample and aggregate features from a node's neighborhood, so it embeds nodes "
     "never seen in training. It does well on citation, Reddit and protein-protein interaction graphs."),
    ("Understanding Deep Learning Requires Rethinking Generalization",
     "Standard convolutional networks easily fit a random labeling of the training data of CIFAR-10 and ImageNet. "
     "Explicit regularization does not explain why the same networks generalize on the real labels."),
    ("Explaining and Harnessing Adversarial Examples",
     "We argue that networks are vulnerable to adversarial perturbations because they are too linear. The argument "
     "yields the fast gradient sign method, and adversarial training with it lowers a maxout network's error on "
     "MNIST."),
    ("Towards Deep Learning Models Resistant to Adversarial Attacks",
     "We view adversarial robustness as robust optimization against a projected gradient descent adversary. Networks "
     "trained this way on MNIST and CIFAR-10 resist a wide range of attacks."),
    ('"Why Should I Trust You?": Explaining the Predictions of Any Classifier',
     "LIME explains any classifier's prediction by fitting an interpretable model locally around it, and SP-LIME "
     "picks a representative set of such explanations. Studies with simulated and human users show they help decide "
     "whether to trust a model."),
    ("A Unified Approach to Interpreting Model Predictions",
     "SHAP gives each feature an importance for a prediction from the Shapley values of game theory, unifying six "
     "existing explanation methods. Its estimates agree better with human intuition."),
    ("Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks",
     "We train a model's initial parameters so that a few gradient steps on a few examples of a new task adapt it "
     "well. It reaches the state of the art on Omniglot and MiniImagenet few-shot classification and also works for "
     "regression and policy gradients."),
    ("Matching Networks for One Shot Learning",
     "A network attends over a small labeled support set to label new examples, trained on episodes that mimic the "
     "test condition. It raises one-shot accuracy on ImageNet from 87.6% to 93.2% and on Omniglot from 88.0% to "
     "93.8%."),
    ("In Search of an Understandable Consensus Algorithm",
     "Raft is a consensus algorithm as efficient as Paxos but designed to be understood, separating leader election, "
     "log replication and safety. In a study, 33 of 43 students answered questions about Raft better than about "
     "Paxos."),
    ("Resilient Distributed Datasets: A Fault-Tolerant Abstraction for In-Memory Cluster Computing",
     "RDDs keep data in memory across a cluster through coarse-grained transformations and rebuild lost partitions "
     "from their lineage. In Spark they run iterative jobs up to 20 times faster than Hadoop and query 1 TB in 5 to 7 "
     "seconds."),
    ("Latent Dirichlet Allocation",
     "A three-level hierarchical Bayesian model treats each document as a mixture of topics and each topic as a "
     "distribution over words. We fit it with variational inference and EM and test it on document modeling, text "
     "classification and collaborative filtering."),
    ("Controlling the False Discovery Rate: A Practical and Powerful Approach to Multiple Testing",
     "We control the expected proportion of false rejections among all rejections, instead of the chance of any "
     "false rejection. A simple sequential Bonferroni-type procedure controls it with more power than familywise "
     "methods."),
    ("Segment Anything",
     "We build a promptable segmentation model and, with it in a data engine, the SA-1B dataset of over 1 billion "
     "masks on 11 million images. The model transfers zero-shot to new image distributions and tasks."),
    ("LLaMA: Open and Efficient Foundation Language Models",
     "We train language models of 7B to 65B parameters on trillions of tokens of publicly available data only. "
     "LLaMA-13B beats GPT-3 (175B) on most benchmarks, and LLaMA-65B is competitive with Chinchilla-70B and "
     "PaLM-540B."),
    ("Training Compute-Optimal Large Language Models",
     "Training over 400 models of 70 million to 16 billion parameters shows that model size and training tokens "
     "should grow equally with compute. Chinchilla, 70B parameters trained on 4 times more data, beats the 280B "
     "Gopher."),
    ("Chain-of-Thought Prompting Elicits Reasoning in Large Language Models",
     "Few-shot exemplars that spell out intermediate reasoning steps make large language models better at arithmetic, "
     "commonsense and symbolic reasoning. With eight such exemplars a 540B-parameter model sets the state of the art "
     "on GSM8K."),
    ("Masked Autoencoders Are Scalable Vision Learners",
     "We mask 75% of the image patches at random and reconstruct the missing pixels with an asymmetric "
     "encoder-decoder. A ViT-Huge pre-trained this way reaches 87.8% on ImageNet-1K using only ImageNet-1K data."),
    ("Mastering Atari, Go, Chess and Shogi by Planning with a Learned Model",
     "MuZero plans with tree search over a learned model that predicts reward, policy and value, without being given "
     "the rules. It sets a new state of the art on 57 Atari games and matches AlphaZero at Go, chess and shogi."),
    ("Power Failure: Why Small Sample Size Undermines the Reliability of Neuroscience",
     "Low statistical power lowers the chance that a significant result reflects a true effect and inflates the "
     "effect sizes found. From meta-analyses we estimate the median power of neuroscience studies at about 21%."),
    ("Momentum Contrast for Unsupervised Visual Representation Learning",
     "Contrastive learning looks keys up in a dictionary kept as a queue and encoded by a slowly moving-average "
     "encoder. Its features do well in linear evaluation on ImageNet and beat supervised pre-training on 7 detection "
     "and segmentation tasks on PASCAL VOC and COCO."),
    ("Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
     "An online network learns to predict a slowly updated target network's representation of another augmented "
     "view of the same image, with no negative pairs. It reaches 74.3% top-1 on ImageNet in linear evaluation with a "
     "ResNet-50."),
    ("NeRF: Representing Scenes as Neural Radiance Fields for View Synthesis",
     "A fully connected network maps a 3D position and viewing direction to volume density and emitted radiance, "
     "fit to a scene's photos through differentiable volume rendering. It renders novel views of complex scenes."),
    ("Grandmaster Level in StarCraft II using Multi-Agent Reinforcement Learning",
     "AlphaStar plays the full game of StarCraft II with a league of agents trained by multi-agent reinforcement "
     "learning after learning from human games. Under human-like constraints it was rated above 99.8% of ranked "
     "players."),
    ("Deep Learning with Differential Privacy",
     "We train deep networks with differentially private stochastic gradient descent and track the privacy cost with "
     "a moments accountant. On MNIST and CIFAR-10 they reach good accuracy under modest privacy budgets."),
    ("Communication-Efficient Learning of Deep Networks from Decentralized Data",
     "Federated Averaging trains a shared model on data kept on users' devices by averaging locally trained updates. "
     "It needs 10 to 100 times fewer communication rounds than synchronized stochastic gradient descent."),
    ("Human-level Concept Learning through Probabilistic Program Induction",
     "Bayesian Program Learning represents handwritten characters as simple probabilistic programs and learns a new "
     "concept from one example. On one-shot classification of characters from 50 alphabets it performs at human "
     "level and passes visual Turing tests."),
    ("Image-to-Image Translation with Conditional Adversarial Networks",
     "Conditional GANs learn both the mapping from input to output image and a loss to train that mapping. The same "
     "approach synthesizes photos from label maps, reconstructs objects from edge maps and colorizes images."),
    ("Rich Feature Hierarchies for Accurate Object Detection and Semantic Segmentation",
     "High-capacity convolutional networks, pre-trained on ImageNet and fine-tuned, classify bottom-up region "
     "proposals. R-CNN improves mean average precision on VOC 2012 by more than 30% relative to the previous best, "
     "to 53.3%."),
    ("Matrix Factorization Techniques for Recommender Systems",
     "Latent factor models factor the user-item rating matrix and can take biases, implicit feedback and temporal "
     "dynamics into account. They beat classic nearest-neighbor techniques in the Netflix Prize."),
]
